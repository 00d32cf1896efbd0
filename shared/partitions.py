"""The fixed product -> partition map: list order of PRODUCTS gives partitions 0, 1, 2, ...

Explicit rather than hashed: librdkafka's default partitioner would put three keys on
three partitions only about one time in five.
"""

from __future__ import annotations

from collections.abc import Sequence


class PartitionMap:
    """Bidirectional map between products and their fixed partitions."""

    def __init__(self, products: Sequence[str]) -> None:
        self.products: tuple[str, ...] = tuple(products)
        self._partition_of = {product: index for index, product in enumerate(self.products)}

    def partition(self, product: str) -> int | None:
        """The product's partition, or None for a product that isn't configured."""
        return self._partition_of.get(product)

    def product(self, partition: int) -> str:
        return self.products[partition]

    def __len__(self) -> int:
        return len(self.products)
