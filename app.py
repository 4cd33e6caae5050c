"""Nuclei segmentation in the browser: run with ``streamlit run app.py``."""

import streamlit as st

st.set_page_config(page_title="Nuclei segmentation", page_icon="🔬", layout="wide")

page = st.navigation(
    [
        st.Page("pages/segment.py", title="Segment", icon=":material/biotech:", default=True),
        st.Page("pages/compare.py", title="Compare", icon=":material/grid_view:"),
        st.Page("pages/batch.py", title="Batch", icon=":material/folder_zip:"),
        st.Page("pages/help.py", title="Help", icon=":material/help:"),
    ]
)
# Less space above and in the page title, and smaller metric values, so that the numbers, the four views and
# the histogram fit on a laptop's first screen and no number is cut at 1024 px; a thin frame round each
# picture, so an all-white mask still shows where it is.
st.html("<style>.block-container{padding-top:1.6rem} h1{font-size:2.1rem !important; padding-top:0.2rem !important}"
        " [data-testid='stMetricValue']{font-size:1.8rem} [data-testid='stImage'] img{outline:1px solid #c8ccd4}"
        "</style>")
page.run()
