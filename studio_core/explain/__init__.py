"""Why a run predicts what it does: Shapley values per column, contributions, what-if, dependence."""
