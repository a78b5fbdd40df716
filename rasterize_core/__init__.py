"""Pure per-tile functions: read a staged tile, compute exact statistics, reduce
children into parents, colour web tiles, write GeoTIFFs. No Parsl in here."""
