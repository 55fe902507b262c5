"""Background work for the studio: tasks with snapshots, the training job, the server-wide hub."""
