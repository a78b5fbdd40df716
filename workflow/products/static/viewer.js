/* rasterflow view: web tiles of each statistic on their own grid, a legend, tile outlines.
 * Reads its data from the JSON in #rasterflow-data; loads nothing from the network.
 * URL: #map=Z/LAT/LON&layers=name,name&outlines=0|1 (kept in step with the map).
 * Served by `rasterflow serve` (data.server set): each legend item gets controls to
 * recolour its layer live (palette, range: the server colours the tiles), kept in the URL
 * as &palette.NAME=...&range.NAME=LO,HI; a click on the map asks the server for the values
 * of every statistic there. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("rasterflow-data").textContent);
  var grid = data.grid;
  var zMin = data.z_range[0], zMax = data.z_range[1];
  var BLANK = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

  // -- the grid: pixel = affine(projected) * 2^zoom, tile (0, 0) at the grid's top-left --
  var sx = grid.tile_size[0] / grid.extent0[0];
  var sy = grid.tile_size[1] / grid.extent0[1];
  var crs = L.extend({}, L.CRS.Earth, {
    code: grid.code,
    projection: grid.projection === "mercator" ? L.Projection.SphericalMercator : L.Projection.LonLat,
    transformation: new L.Transformation(sx, -grid.origin[0] * sx, -sy, grid.origin[1] * sy),
    scale: function (zoom) { return Math.pow(2, zoom); },
    zoom: function (scale) { return Math.log(scale) / Math.LN2; }
  });

  function level(map) {
    return Math.min(zMax, Math.max(zMin, Math.round(map.getZoom())));
  }

  function formatValue(v) {
    if (v === null || v === undefined) { return "?"; }
    if (v === 0) { return "0"; }
    var a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) { return v.toExponential(2); }
    return String(Number(v.toPrecision(4)));
  }

  // -- state from the URL ------------------------------------------------------
  var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  var wanted = params.has("layers") ? params.get("layers").split(",")
    : [data.default_layer || data.layers[0].name];  // the layer that stands out on the page
  var server = data.server;  // null for the offline page
  var showOutlines = params.get("outlines") !== "0";

  var map = L.map("map", {
    crs: crs,
    minZoom: data.zoom[0],
    maxZoom: data.zoom[1],
    zoomSnap: 1,
    worldCopyJump: false
  });
  map.attributionControl.setPrefix(
    '<a href="https://leafletjs.com" title="A JavaScript library for interactive maps">Leaflet</a>');
  map.attributionControl.addAttribution("rasterflow");

  var extent = data.extent;  // [west, south, east, north]
  var bounds = extent ? L.latLngBounds([extent[1], extent[0]], [extent[3], extent[2]]) : null;

  // -- one tile layer per statistic; tiles that do not exist are never requested -------
  var known = {};
  Object.keys(data.known).forEach(function (z) { known[z] = new Set(data.known[z]); });

  var RasterLayer = L.TileLayer.extend({
    getTileUrl: function (coords) {
      var level = known[coords.z];
      if (level && !level.has(coords.x + "/" + coords.y)) { return BLANK; }
      return L.TileLayer.prototype.getTileUrl.call(this, coords);
    }
  });

  // -- served: a layer's palette and range, changed live (the server colours the tiles) --
  var styles = {};  // name -> {palette: text or null, range: [lo, hi] or null, colors: [...]}
  function styleQuery(style) {
    var parts = [];
    if (style.palette) { parts.push("palette=" + encodeURIComponent(style.palette)); }
    if (style.range) { parts.push("range=" + style.range[0] + "," + style.range[1]); }
    return parts.length ? "?" + parts.join("&") : "";
  }

  var overlays = {}, layersByName = {};
  data.layers.forEach(function (spec) {
    var layer = new RasterLayer(spec.url, {
      tileSize: L.point(grid.tile_size[0], grid.tile_size[1]),
      minZoom: data.zoom[0],
      maxZoom: data.zoom[1],
      minNativeZoom: zMin,
      maxNativeZoom: zMax,
      bounds: bounds ? bounds.pad(0.01) : undefined,
      noWrap: true,
      errorTileUrl: BLANK
    });
    layer.rfName = spec.name;
    layersByName[spec.name] = layer;
    overlays[spec.name] = layer;
    if (wanted.indexOf(spec.name) >= 0) { layer.addTo(map); }
  });

  // -- tile outlines of the level on screen -----------------------------------------
  var outlineStyle = { color: "#4a4a4a", weight: 1, opacity: 0.65, fill: true, fillOpacity: 0 };
  var outlineLevels = {};
  Object.keys(data.outlines).forEach(function (z) {
    outlineLevels[z] = L.geoJSON(data.outlines[z], {
      style: function () { return outlineStyle; },
      onEachFeature: function (feature, layer) {
        var p = feature.properties;
        layer.bindTooltip("tile " + p.z + "/" + p.x + "/" + p.y, { sticky: true, className: "rf-tooltip" });
      }
    });
  });
  var outlines = L.layerGroup();
  function refreshOutlines() {
    outlines.clearLayers();
    var z = String(level(map));
    if (outlineLevels[z]) { outlines.addLayer(outlineLevels[z]); }
  }
  overlays["tile outlines"] = outlines;
  if (showOutlines) { outlines.addTo(map); }

  L.control.layers(null, overlays, { collapsed: false, position: "topright" }).addTo(map);
  L.control.scale({ position: "bottomleft" }).addTo(map);

  // -- title and cursor position -------------------------------------------------------
  var Info = L.Control.extend({
    options: { position: "topleft" },
    onAdd: function () {
      this._div = L.DomUtil.create("div", "rf-box rf-info");
      L.DomEvent.disableClickPropagation(this._div);
      return this._div;
    },
    update: function (latlng) {
      var where = latlng ? latlng.lat.toFixed(5) + ", " + latlng.lng.toFixed(5) : "";
      this._div.innerHTML = '<div class="rf-title"></div><div class="rf-muted"></div>';
      this._div.firstChild.textContent = data.title;
      this._div.firstChild.title = data.title;
      this._div.lastChild.textContent = data.tms_id + " \u00b7 zoom " + map.getZoom() +
        " \u00b7 tiles z" + level(map) +
        (where ? " \u00b7 " + where : "");
    }
  });
  var info = new Info().addTo(map);

  // -- legend: palette and value range at the level on screen ---------------------------
  var Legend = L.Control.extend({
    options: { position: "bottomright" },
    onAdd: function () {
      this._div = L.DomUtil.create("div", "rf-box rf-legend");
      L.DomEvent.disableClickPropagation(this._div);
      L.DomEvent.disableScrollPropagation(this._div);
      return this._div;
    },
    update: function () {
      var z = level(map), div = this._div;
      div.innerHTML = "";
      data.layers.forEach(function (spec) {
        if (!map.hasLayer(layersByName[spec.name])) { return; }
        var style = styles[spec.name] || {};
        var range = style.range || spec.ranges[String(z)] || [null, null];
        var item = L.DomUtil.create("div", "rf-legend-item", div);
        item.setAttribute("data-stat", spec.name);
        var name = L.DomUtil.create("div", "rf-legend-name", item);
        name.textContent = spec.name;
        var what = L.DomUtil.create("div", "rf-muted", item);
        what.textContent = spec.what + ", z" + z;
        var ramp = L.DomUtil.create("div", "rf-ramp", item);
        L.DomUtil.create("div", "", ramp).style.backgroundImage =
          "linear-gradient(to right, " + (style.colors || spec.colors).join(", ") + ")";
        var ticks = L.DomUtil.create("div", "rf-ticks", item);
        var mid = range[0] !== null && range[1] !== null ? (range[0] + range[1]) / 2 : null;
        [range[0], mid, range[1]].forEach(function (v, i) {
          var tick = L.DomUtil.create("span", "", ticks);
          tick.textContent = formatValue(v) + (i === 2 && range[1] !== null ? "+" : "");
          tick.className = ["rf-lo", "rf-mid", "rf-hi"][i];
        });
        var nodata = L.DomUtil.create("div", "rf-muted", item);
        nodata.innerHTML = '<span class="rf-swatch"></span>no data';
        nodata.firstChild.style.background = spec.nodata_color;
        if (server) { styleControls(item, spec, style); }
        var levels = L.DomUtil.create("details", "rf-levels", item);
        L.DomUtil.create("summary", "", levels).textContent = "range per level";
        var table = L.DomUtil.create("table", "", levels);
        Object.keys(spec.ranges).sort(function (a, b) { return a - b; }).forEach(function (lz) {
          var row = L.DomUtil.create("tr", Number(lz) === z ? "rf-current" : "", table);
          row.setAttribute("data-z", lz);
          [ "z" + lz, formatValue(spec.ranges[lz][0]), "to", formatValue(spec.ranges[lz][1]) ]
            .forEach(function (text) { L.DomUtil.create("td", "", row).textContent = text; });
        });
      });
      if (!div.firstChild) { div.innerHTML = '<span class="rf-muted">no statistic shown</span>'; }
    }
  });
  var legend = new Legend().addTo(map);

  var openControls = {};  // name -> true while its "colours" box is open (kept across redraws)
  function styleControls(item, spec, style) {
    var box = L.DomUtil.create("details", "rf-style", item);
    box.open = !!openControls[spec.name];
    box.addEventListener("toggle", function () { openControls[spec.name] = box.open; });
    L.DomUtil.create("summary", "", box).textContent = "colours";
    var pick = L.DomUtil.create("select", "rf-palette-pick", box);
    var own = Array.isArray(spec.palette) ? spec.palette.join(",") : spec.palette;
    [["", "config: " + own]].concat(server.colormaps.map(function (n) { return [n, n]; }))
      .forEach(function (pair) {
        var option = L.DomUtil.create("option", "", pick);
        option.value = pair[0];
        option.textContent = pair[1];
      });
    var text = L.DomUtil.create("input", "rf-palette-text", box);
    text.placeholder = "or CSS colours: #000,#fff";
    var known = server.colormaps.indexOf(style.palette) >= 0;
    pick.value = known ? style.palette : "";
    text.value = style.palette && !known ? style.palette : "";
    var row = L.DomUtil.create("div", "rf-range", box);
    var lo = L.DomUtil.create("input", "rf-lo-input", row);
    var hi = L.DomUtil.create("input", "rf-hi-input", row);
    lo.placeholder = "low";
    hi.placeholder = "high";
    if (style.range) { lo.value = style.range[0]; hi.value = style.range[1]; }
    var apply = L.DomUtil.create("button", "", row);
    apply.textContent = "apply";
    var reset = L.DomUtil.create("button", "", row);
    reset.textContent = "reset";
    var message = L.DomUtil.create("div", "rf-error", box);
    apply.addEventListener("click", function () {
      var range = null;
      if (lo.value.trim() !== "" || hi.value.trim() !== "") {
        range = [Number(lo.value), Number(hi.value)];
        if (!isFinite(range[0]) || !isFinite(range[1]) || lo.value.trim() === "" ||
            hi.value.trim() === "" || range[0] > range[1]) {
          message.textContent = "range: two numbers, low <= high";
          return;
        }
      }
      setStyle(spec.name, text.value.trim() || pick.value || null, range, function (error) {
        message.textContent = error || "";
      });
    });
    reset.addEventListener("click", function () { setStyle(spec.name, null, null); });
  }

  // Recolour a layer: check the palette with the server (its legend colours), then point
  // the layer's tiles at the new style. `done(error)` is told the outcome.
  function setStyle(name, palette, range, done) {
    done = done || function () {};
    var finish = function (colors) {
      styles[name] = { palette: palette, range: range, colors: colors };
      if (!palette && !range) { delete styles[name]; }
      var spec = data.layers.filter(function (s) { return s.name === name; })[0];
      layersByName[name].setUrl(spec.url + styleQuery(styles[name] || {}));
      legend.update();
      remember();
      done(null);
    };
    if (!palette) { finish(null); return; }
    fetch(server.palette + "?palette=" + encodeURIComponent(palette))
      .then(function (response) {
        return response.json().then(function (body) { return [response.ok, body]; });
      })
      .then(function (answer) {
        if (answer[0]) { finish(answer[1].colors); } else { done(answer[1].error); }
      })
      .catch(function (error) { done(String(error)); });
  }

  // -- served: the values of every statistic where the map is clicked ---------------------
  function showPoint(latlng) {
    var z = level(map);
    var url = server.point + "?lon=" + latlng.lng.toFixed(8) + "&lat=" + latlng.lat.toFixed(8) +
      "&z=" + z;
    fetch(url).then(function (response) { return response.json(); }).then(function (body) {
      var div = L.DomUtil.create("div", "rf-point");
      if (body.error) { div.textContent = body.error; } else {
        var table = L.DomUtil.create("table", "", div);
        var head = L.DomUtil.create("tr", "", table);
        L.DomUtil.create("th", "", head);
        body.levels.forEach(function (lv) { L.DomUtil.create("th", "", head).textContent = "z" + lv.z; });
        data.layers.forEach(function (spec) {
          var tr = L.DomUtil.create("tr", "", table);
          L.DomUtil.create("td", "", tr).textContent = spec.name;
          body.levels.forEach(function (lv) {
            L.DomUtil.create("td", "", tr).textContent = lv.exists ? formatValue(lv.values[spec.name]) : "-";
          });
        });
      }
      L.popup().setLatLng(latlng).setContent(div).openOn(map);
    });
  }

  // -- view: from the URL, else the extent of the tiles; keep the URL in step -----------
  var view = (params.get("map") || "").split("/").map(Number);
  if (view.length === 3 && view.every(isFinite)) {
    map.setView([view[1], view[2]], view[0], { animate: false });
  } else if (bounds) {
    map.fitBounds(bounds, { animate: false });
  } else {
    map.setView([0, 0], data.zoom[0]);
  }

  function remember() {
    var c = map.getCenter();
    var shown = data.layers.map(function (s) { return s.name; })
      .filter(function (n) { return map.hasLayer(layersByName[n]); });
    var hash = "map=" + map.getZoom() + "/" + c.lat.toFixed(6) + "/" + c.lng.toFixed(6) +
      "&layers=" + shown.join(",") + "&outlines=" + (map.hasLayer(outlines) ? 1 : 0);
    Object.keys(styles).forEach(function (name) {
      var style = styles[name];
      if (style.palette) { hash += "&palette." + name + "=" + encodeURIComponent(style.palette); }
      if (style.range) { hash += "&range." + name + "=" + style.range.join(","); }
    });
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", "#" + hash);
    }
  }

  function refresh() { refreshOutlines(); legend.update(); info.update(); }
  map.on("zoomend", refresh);
  map.on("overlayadd overlayremove", function () { legend.update(); remember(); });
  map.on("moveend", remember);
  map.on("mousemove", function (e) { info.update(e.latlng); });
  refresh();
  if (server) {
    map.on("click", function (e) { showPoint(e.latlng); });
    data.layers.forEach(function (spec) {  // styles from the URL, as the controls set them
      var palette = params.get("palette." + spec.name);
      var range = (params.get("range." + spec.name) || "").split(",").map(Number);
      range = range.length === 2 && range.every(isFinite) ? range : null;
      if (palette || range) { setStyle(spec.name, palette, range); }
    });
    window.rasterflowSetStyle = setStyle;  // for scripts and tests
  }
  window.rasterflowMap = map;  // for scripts and tests
})();
