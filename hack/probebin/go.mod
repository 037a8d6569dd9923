module example.invalid/probebin

go 1.26.0
