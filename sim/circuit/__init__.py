"""Circuit-simulator side of the co-design: array netlists and the VACASK/ngspice drivers."""
