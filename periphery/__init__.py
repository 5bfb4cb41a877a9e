"""Amaranth descriptions of the mbnn digital periphery. Verilog is generated from these."""
