package v1alpha_test

import (
	"testing"

	"github.com/kannika/armory/pkg/testenv"
)

// env is the real kube-apiserver, with the generated CRDs, that every test in
// this package shares.
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }
