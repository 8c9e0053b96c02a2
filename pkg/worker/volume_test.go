package worker_test

import (
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/volume"
)

func volumeBucket(path string) (storage.Bucket, error) { return volume.New(path) }
