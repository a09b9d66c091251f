package emit

import (
	"github.com/levee-go/levee/telemetry"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestModuleVersion_FromBuildInfo(t *testing.T) {
	t.Parallel()
	dep := func(path, version string, replace *debug.Module) *debug.Module {
		return &debug.Module{Path: path, Version: version, Replace: replace}
	}
	tests := []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{
			name: "levee as a dependency",
			info: debug.BuildInfo{
				Main: debug.Module{Path: "example.com/app", Version: "(devel)"},
				Deps: []*debug.Module{dep("go.opentelemetry.io/otel", "v1.47.0", nil), dep(telemetry.ScopeName, "v1.2.3", nil)},
			},
			want: "v1.2.3",
		},
		{
			name: "levee replaced by another version",
			info: debug.BuildInfo{
				Main: debug.Module{Path: "example.com/app"},
				Deps: []*debug.Module{dep(telemetry.ScopeName, "v1.2.3", dep("example.com/fork", "v1.2.4-fix", nil))},
			},
			want: "v1.2.4-fix",
		},
		{
			name: "levee replaced by a directory",
			info: debug.BuildInfo{
				Main: debug.Module{Path: "example.com/app"},
				Deps: []*debug.Module{dep(telemetry.ScopeName, "v1.2.3", dep("../levee", "", nil))},
			},
			want: "v1.2.3",
		},
		{
			name: "levee built at a release",
			info: debug.BuildInfo{Main: debug.Module{Path: telemetry.ScopeName, Version: "v0.4.0"}},
			want: "v0.4.0",
		},
		{
			name: "levee built from a checkout",
			info: debug.BuildInfo{Main: debug.Module{Path: telemetry.ScopeName, Version: "(devel)"}},
			want: devVersion,
		},
		{
			name: "levee not in the build",
			info: debug.BuildInfo{
				Main: debug.Module{Path: "example.com/app", Version: "v9.9.9"},
				Deps: []*debug.Module{dep("github.com/levee-go/levee-extra", "v1.0.0", nil)},
			},
			want: devVersion,
		},
		{
			name: "no module information",
			info: debug.BuildInfo{},
			want: devVersion,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, moduleVersion(&tt.info))
		})
	}
}

func TestVersion_IsDevInsideLeveesOwnTests(t *testing.T) {
	t.Parallel()
	// A test binary's main module is levee itself at "(devel)".
	assert.Equal(t, "v0.0.0-dev", Version())
	assert.Equal(t, Version(), Version(), "read once, stable")
}
