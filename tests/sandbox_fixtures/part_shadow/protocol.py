MARK = "student protocol module"
