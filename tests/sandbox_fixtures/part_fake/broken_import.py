value = int("not a number")
