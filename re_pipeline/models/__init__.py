"""Stage 5: the encoders (loaded, packaged e5, or built offline), relation heads, losses, PEFT, and the
classical TF-IDF and type-pair-prior models; they read data, never training or evaluation."""
