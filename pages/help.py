"""Help page: the pipeline in a biologist's words, and what to do when a result looks wrong."""

import streamlit as st

from pages.common import run_page
from segmentation.params import SETTINGS, STAGE_FIELDS, STAGE_TITLES


def main() -> None:
    st.title("Help")
    st.markdown(
    """
This app runs the **classic segmentation pipeline** on images of stained nuclei (DAPI, Hoechst,
nuclear GFP). Each step is a control in the sidebar of the **Segment** page, and the four views
(raw, filtered, mask, labels) follow every change.

| step | what it does | the controls |
| --- | --- | --- |
| 1 · Filter | reduces noise so that the threshold gives smooth, solid nuclei | filter type, sigma / kernel size; background subtraction for uneven illumination |
| 2 · Threshold | keeps the pixels brighter than a cutoff; the histogram shows where it falls | manual value or an automatic method (Otsu, Li, …); local threshold for uneven background |
| 3 · Refine | cleans the mask | remove small objects, closing, fill holes, opening, remove objects on the border |
| 4 · Split | separates touching nuclei: distance to the background → one seed per nucleus → watershed | footprint, min_distance (or h-maxima) |
| 5 · Measure | one row per nucleus: area, intensity (in your image's units), shape | pixel size in µm |

**Pages**
- **Segment** — tune the settings on one image; download its labels, mask, overlay, table,
  settings and a Python script.
- **Compare** — every filter and size, every threshold method and several splitting settings
  side by side; "Use these settings" adopts one.
- **Batch** — run the current settings on a whole folder and download one zip.

### When the result looks wrong
- **Almost everything is white in the mask** — your nuclei may be darker than the background
  (choose *Darker than background*), or the background is uneven (try background subtraction
  or the *local* threshold).
- **Dim nuclei are missing** — lower the threshold: try *Li* or *Triangle*, or a manual cutoff
  on the histogram's valley.
- **Nuclei are cut in two** — raise *min_distance* or *footprint*, or smooth the distance map
  (Advanced: seeds).
- **Touching nuclei stay merged** — lower *min_distance* / *footprint*.
- **Nuclei at the image border vanish** — the course's recipe finds no seed there; tick *Keep
  objects without a seed* (Advanced: seeds). Magenta outlines in the overlay show every object
  that was removed.
- **Most nuclei are outlined in magenta (removed)** — the settings were probably tuned on other
  images (another objective, camera or binning): *Remove objects smaller than*, the object filters
  or the seeds no longer fit. Press *Suggest settings for this image*, or on the Batch page choose
  *Suggested for each image*; the Batch results mark such images ⚠️.
- **Speckles are counted as nuclei** — raise *Remove objects smaller than* or the filter size.

### Reproducibility
Automatic threshold methods choose a cutoff per image from its histogram, so the same settings
give comparable results across images. The settings file (Download → Settings JSON) restores
every control; the Python script reproduces the segmentation without this app, with plain
scikit-image calls. The command line runs the same batch: `.venv/bin/python -m segmentation FOLDER
--out results.zip --settings settings.json` (from the folder you installed the app in).
"""
)

    with st.expander("Every setting explained"):
        for stage, names in STAGE_FIELDS.items():
            st.markdown(f"#### {STAGE_TITLES[stage]}")
            for name in names:
                spec = SETTINGS[name]
                unit = f" ({spec.unit})" if spec.unit else ""
                st.markdown(f"**{spec.label}{unit}** (`{name}` in the settings file) — {spec.help}")
                if spec.choices:
                    st.markdown("\n".join(f"- *{m.label}* (`{key}`): {m.help}" for key, m in spec.choices.items()))


run_page(main)
