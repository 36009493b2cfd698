-- "Every image with a dog": GET /v1/jobs?label=dog tests containment of {"label": "dog"} in the
-- detections, which this index answers without reading every job's result.
CREATE INDEX jobs_by_label ON jobs USING gin ((result -> 'objects' -> 'detections') jsonb_path_ops);
