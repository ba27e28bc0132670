"""Stage 5-6 in motion: fine-tuning with the Trainer (train, hf_trainer), TAPT, the frozen-layer store,
throughput accounting and the hyperparameter search space."""
