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
# less empty space above the page title, so the four views fit on a laptop screen;
# a thin frame round each picture, so an all-white mask still shows where it is
st.html("<style>.block-container{padding-top:2.2rem} [data-testid='stImage'] img{outline:1px solid #c8ccd4}</style>")
page.run()
