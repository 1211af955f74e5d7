"""Rules for the FFT primitives: each one's adjoint is an FFT the other way (complex by nature,
so every rule here takes complex values). g: cotangent of the output; return one cotangent per
argument."""

from ..ops import aten
from ..record import cat, fft_c2c, fft_r2c, full_like, ones_like


def fft_r2c_rule(g, y, x, dim, normalization, onesided):
    # the adjoint of a real-to-complex FFT: the inverse c2c of g, the dropped half zero-filled
    last = dim[-1]
    missing = x.shape[last] - g.shape[last]
    if onesided and missing > 0:
        shape = list(g.shape)
        shape[last] = missing
        g = cat([g, g.new_zeros(shape)], last)
    return (fft_c2c(g, dim, normalization, False).real,)


def fft_c2r_rule(g, y, x, dim, normalization, last_dim_size):
    # the adjoint of c2r: a onesided r2c, the bins that stood for two counted twice
    gx = fft_r2c(g, dim, normalization, True)
    last = dim[-1]
    doubled = g.shape[last] - gx.shape[last]
    if doubled > 0:
        n = gx.shape[last]
        ones = ones_like(gx.slice(last, 0, 1))
        twos = full_like(gx.slice(last, 1, 1 + doubled), 2)
        rest = ones_like(gx.slice(last, 1 + doubled, n))
        gx = gx * cat([ones, twos, rest], last)
    return (gx,)


RULES = {
    aten._fft_r2c.default: fft_r2c_rule,
    aten._fft_c2r.default: fft_c2r_rule,
    aten._fft_c2c.default: lambda g, y, x, dim, normalization, forward: (
        fft_c2c(g, dim, normalization, not forward),
    ),
}

COMPLEX_SAFE = set(RULES)
