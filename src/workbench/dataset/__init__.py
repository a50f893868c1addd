"""The dataset: `dataset.yaml` (spec), sources (readers), mapping, dates, checks, the validated
`Dataset` (model, loader), slices (store), stage history, segments of deals (groups), the sample."""
