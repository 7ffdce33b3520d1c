raise ImportError("a student file named numpy.py must never be imported")
