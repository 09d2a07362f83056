#!/usr/bin/env bash
# Seeds the fuzz corpora (git-ignored fuzz/corpus/) from tests/data: DICOMs, PNG/JPEGs, and multipart bodies
# (boundary-length byte + boundary + body) wrapping a few fixtures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
mkdir -p corpus/decode_dicom corpus/decode_raster corpus/multipart
cp ../tests/data/dicom/*.dcm corpus/decode_dicom/
cp ../tests/data/images/* corpus/decode_raster/
for f in ../tests/data/images/tbx11k_h0001_rgb.png ../tests/data/dicom/cxr_rle.dcm; do
  b=cxrboundary0123
  { printf '\x0f%s' "$b"; printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="x"\r\nContent-Type: application/octet-stream\r\n\r\n' "$b"; cat "$f"; printf '\r\n--%s--\r\n' "$b"; } > "corpus/multipart/$(basename "$f").mp"
done
printf '\x03abc--abc\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--abc--\r\n' > corpus/multipart/no-file.mp
