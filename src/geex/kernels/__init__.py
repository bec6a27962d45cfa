"""GPU kernels (Triton). Each one has a plain PyTorch twin elsewhere that CPU runs and tests use;
the tests also run these kernels on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``)."""
