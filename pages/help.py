import streamlit as st

st.title("Help")
