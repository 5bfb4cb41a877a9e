"""mbnn golden model: the numpy reference that defines, bit-exactly, what the chip computes.

This package imports neither Amaranth nor cocotb; it must run anywhere numpy runs.
"""
