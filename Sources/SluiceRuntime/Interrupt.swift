import Foundation
import Synchronization

/// Ctrl-C for commands that write: the first SIGINT asks the load in progress to stop and
/// roll back (checked between batches; a commit under way finishes); a second one ends the
/// process at once, which the database also rolls back.
public enum Interrupt {
    static let state = Mutex<(requested: Bool, source: (any DispatchSourceSignal)?)>((false, nil))

    /// Takes over SIGINT for this process (idempotent).
    public static func install() {
        state.withLock { s in
            guard s.source == nil else { return }
            signal(SIGINT, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
            source.setEventHandler {
                let again = state.withLock { s in
                    defer { s.requested = true }
                    return s.requested
                }
                if again { exit(130) }
                FileHandle.standardError.write(Data("\ninterrupting: rolling back (Ctrl-C again to quit at once)\n".utf8))
            }
            source.resume()
            s.source = source
        }
    }

    /// Whether Ctrl-C was pressed.
    public static var requested: Bool { state.withLock { $0.requested } }
}
