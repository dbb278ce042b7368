"""The chain-rule network of seed 003, written as definitions.

f = (u + v)², u = (a + b)², v = (a − b)², a = (w + x + y + z)², b = (w + x − y − z)².
At (w, x, y, z) = (−1, 0, −2, 1) the seed finds f = 1024 and ∂f/∂w = ∂f/∂x = ∂f/∂y = ∂f/∂z = −4096.
"""

import indexcalc as ic

program = """
a = (w + x + y + z)^2
b = (w + x - y - z)^2
u = (a + b)^2
v = (a - b)^2
(u + v)^2
"""
f = ic.parse(program)
by_w = ic.diff(program, "w")

print(f"f     = {f}")
print(f"∂f/∂w = {by_w}")
print(f"LaTeX = {by_w.latex()}")

point = {"w": -1.0, "x": 0.0, "y": -2.0, "z": 1.0}
value = ic.evaluate(f, point)
print(f"f at (-1, 0, -2, 1) = {value}")
assert value == 1024, value
for name in "wxyz":
    slope = ic.evaluate(ic.diff(f, name), point)
    print(f"∂f/∂{name} at (-1, 0, -2, 1) = {slope}")
    assert slope == -4096, (name, slope)
print("f = 1024 and every partial derivative is -4096, as in the seed")
