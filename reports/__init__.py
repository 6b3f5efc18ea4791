"""Reports: MLflow runs -> a tidy pandas table -> Markdown with the scaling comparison."""
