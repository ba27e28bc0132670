"""After a model predicts: the competition's metrics, calibration and the test's label shift (prior), and
train/test shift reports. Reads core and data only."""
