/// What this binary is. `scripts/build-release.sh` writes the commit and date in while it
/// builds (and puts this file back after); other builds say `unknown`.
enum BuildInfo {
    static let version = "0.1.0"
    static let commit = "unknown"
    static let built = "unknown"

    static var line: String { "sluice \(version) (commit \(commit), built \(built))" }
}
