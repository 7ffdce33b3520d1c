raise ImportError("a student file named torch.py must never be imported")
