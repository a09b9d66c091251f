package emit

import (
	"github.com/levee-go/levee/telemetry"
	"runtime/debug"
	"sync"
)

// devVersion is reported when the binary's build information does not
// carry levee's module version (a build inside levee's own repository, or a
// binary built without module support).
const devVersion = "v0.0.0-dev"

// Version returns the version of the levee module compiled into this
// binary, as the go command recorded it ("v1.2.3"), or "v0.0.0-dev" when it
// is not known. It is the instrumentation scope's version. Safe for
// concurrent use; the build information is read once.
func Version() string { return version() }

var version = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return devVersion
	}
	return moduleVersion(info)
})

func moduleVersion(info *debug.BuildInfo) string {
	if info.Main.Path == telemetry.ScopeName && isRelease(info.Main.Version) {
		return info.Main.Version
	}
	for _, dep := range info.Deps {
		if dep.Path != telemetry.ScopeName {
			continue
		}
		if dep.Replace != nil && isRelease(dep.Replace.Version) {
			return dep.Replace.Version
		}
		if isRelease(dep.Version) {
			return dep.Version
		}
	}
	return devVersion
}

func isRelease(v string) bool { return v != "" && v != "(devel)" }
