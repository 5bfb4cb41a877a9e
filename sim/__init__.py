"""mbnn simulation: cocotb testbenches, simulator runner and the ``mbnn`` command line."""
