"""Datasets: collection into HDF5, the one reader, and a windowed torch dataset."""
