"""The compiled core of the engine (private: use the ``engine`` package's API)."""
