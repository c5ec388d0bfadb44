import Foundation

/// A blocking first-in-first-out queue with a fixed capacity: the reading thread waits
/// when the writing side falls behind, so at most `capacity` batches are in memory.
public final class BoundedQueue<Element>: @unchecked Sendable {
    private var items: [Element] = []
    private let capacity: Int
    private let condition = NSCondition()
    private var closed = false

    public init(capacity: Int) { self.capacity = capacity }

    /// Adds an element, waiting for room. Returns false if the queue was closed.
    @discardableResult
    public func push(_ e: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count >= capacity && !closed { condition.wait() }
        if closed { return false }
        items.append(e)
        condition.broadcast()
        return true
    }

    /// Takes the oldest element, waiting for one; nil once closed and empty.
    public func pop() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !closed { condition.wait() }
        if items.isEmpty { return nil }
        let e = items.removeFirst()
        condition.broadcast()
        return e
    }

    /// Wakes both sides; pushes fail from now on, pops drain what is left.
    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Closes and drops pending elements (when the consumer gives up).
    public func cancel() {
        condition.lock()
        closed = true
        items.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}
