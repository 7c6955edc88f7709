"""placeholder"""
def quantize(*a, **k):
    raise NotImplementedError
class Int8Model: pass
