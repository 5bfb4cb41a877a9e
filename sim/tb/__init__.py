"""cocotb test modules (run inside the simulator by :mod:`sim.runner`, never by pytest)."""
