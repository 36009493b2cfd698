//! Object detection with a native candle YOLOv12n.
