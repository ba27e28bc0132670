"""Many runs at once, above the pipeline: screening, hyperparameter search, parallel jobs and reproducing a
run from its log."""
