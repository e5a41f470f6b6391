"""The reliability review's heaviest legal playground setting, shared by the kernel-side and
widget-side tests of the work budget."""

from __future__ import annotations


def heavy_expression(limit: int = 500) -> str:
    """A product/sum tree of sinh(x*y) leaves, as long as the expression length bound allows
    (about 250 nodes, 489 characters at the default bound)."""

    def tree(n: int) -> str:
        if n == 1:
            return "sinh(x*y)"
        left, right = tree(n // 2), tree(n - n // 2)
        return f"({left}*{right})" if n % 3 else f"({left}+{right})"

    return max((tree(n) for n in range(2, 80) if len(tree(n)) <= limit), key=len)
