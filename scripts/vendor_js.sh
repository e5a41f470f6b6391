#!/usr/bin/env bash
# Fill _vendor/ with the JavaScript the built book loads at view time, taken from the npm
# registry at the versions pinned in package-lock.json, so that a reader needs no CDN:
#   _vendor/mathjax/        MathJax 3.2.2, pruned to what tex-chtml needs (about 3 MB, not 24)
# _config.yml points mathjax_path at it. It must NOT live in a _static/ folder: Jupyter Book
# would then inject every .js/.css found there into every page. The same `npm ci` installs
# the browser laboratory's libraries and esbuild, which lab/build_lab.py bundles.
set -euo pipefail
cd "$(dirname "$0")/.."

# --ignore-scripts: nothing in this tree needs an install script, and none should run here.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

# Assemble into a temporary folder and swap it in at the end, so an interrupted run never
# leaves a half-filled _vendor/ behind that looks complete to make.
tmp=_vendor.tmp
rm -rf "$tmp"
mkdir -p "$tmp/mathjax/output/chtml/fonts" "$tmp/mathjax/input/tex"
mj=node_modules/mathjax/es5
cp "$mj/tex-chtml.js" "$tmp/mathjax/"
cp -r "$mj/output/chtml/fonts/woff-v2" "$tmp/mathjax/output/chtml/fonts/"
# TeX packages that MathJax autoloads on first use (\boldsymbol, \cancel, ...).
cp -r "$mj/input/tex/extensions" "$tmp/mathjax/input/tex/"
# Loaded lazily by MathJax's context menu and accessibility features.
cp -r "$mj/a11y" "$mj/ui" "$tmp/mathjax/"
touch "$tmp/.stamp"
rm -rf _vendor
mv "$tmp" _vendor
du -sh _vendor
