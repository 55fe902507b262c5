"""Report: one self-contained HTML file a stakeholder opens offline -- the data and its split,
the leaderboard with intervals, curves, weights, SHAP importance, the model card and the
export's parity figures; charts are inline SVG, so the file fetches nothing."""
