"""The analog side of the golden model: devices, the ADC, and the crossbar's parasitic network."""
