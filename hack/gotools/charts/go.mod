module meshops.local/gotools/charts

go 1.24.0

require github.com/cilium/charts v0.0.0-20260401193212-853ba84e802b
