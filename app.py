"""Nuclei segmentation in the browser: run with ``streamlit run app.py``."""

import streamlit as st

st.set_page_config(page_title="Nuclei segmentation", page_icon="🔬", layout="wide")

page = st.navigation(
    [
        st.Page("pages/segment.py", title="Segment", icon="🔬", default=True),
        st.Page("pages/compare.py", title="Compare", icon="🧪"),
        st.Page("pages/batch.py", title="Batch", icon="📦"),
        st.Page("pages/help.py", title="Help", icon="❓"),
    ]
)
page.run()
