"""Running taskkit models on other engines: :mod:`taskkit.integrations.ray` (``pip install taskkit[ray]``).

Each integration imports its engine inside, so importing this package needs none of them.
"""
