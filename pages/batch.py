import streamlit as st

st.title("Batch")
st.info("Coming soon.")
