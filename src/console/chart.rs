//! Bar charts drawn by the server as inline SVG.
