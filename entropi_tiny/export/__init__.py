"""Export: from trained PyTorch encoders to the files the firmware reads."""
