//go:build tools

// Package tools pins MinIO, the S3 server of the Knative lane's model store
// (kfserving_operator/cluster/modelstore.py). Built unchanged from its module; MinIO tags
// its releases by date, so the module proxy serves them as pseudo-versions.
package tools

import (
	_ "github.com/minio/minio"
)
