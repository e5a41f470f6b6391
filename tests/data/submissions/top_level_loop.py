# A loop at the top level: the submission never finishes loading.
while True:
    pass
