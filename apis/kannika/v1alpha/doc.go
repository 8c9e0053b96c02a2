// Package v1alpha holds the kannika.io/v1alpha API: the custom resources users
// write to describe what Armory backs up and restores.
//
// +k8s:deepcopy-gen=package
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=com.github.kannika.armory.apis.kannika.v1alpha
// +groupName=kannika.io
package v1alpha
