"""`rasterflow serve`: web tiles coloured on the fly from a run's GeoTIFFs, point queries,
the map viewer and WMTS capabilities, over HTTP (Starlette on uvicorn).

- `styles`: the palette, range and nodata of a tile (the config's or a request's);
- `render`: the run's GeoTIFFs read into PNG tiles and point values;
- `app`: the routes, errors as HTTP answers, cache headers;
- `pages`: the viewer page and the WMTS document in server mode;
- `logs`: one JSON line per request;
- `launch`: uvicorn with its workers.

A product: it reads what the engine wrote and is never imported by it.
"""
