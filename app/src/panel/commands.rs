//! Every keyboard shortcut of the panel, in one table: the key handler and the F1 help
//! overlay both read it, so the help can never disagree with the keys.

use egui::{Key, Modifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Confirm,
    /// Override to the n-th label of the label list (0-based).
    OverrideTo(usize),
    OpenPicker,
    NextInQueue,
    Previous,
    Next,
    FollowLive,
    TogglePause,
    ToggleFullscreen,
    ToggleContrast,
    ToggleHelp,
    Screenshot,
    EngineerSignIn,
    Thresholds,
    SignOut,
}

pub struct Shortcut {
    pub key: Key,
    pub modifiers: Modifiers,
    pub keys: &'static str,
    pub does: &'static str,
    pub command: Command,
}

const fn key(key: Key, keys: &'static str, does: &'static str, command: Command) -> Shortcut {
    Shortcut {
        key,
        modifiers: Modifiers::NONE,
        keys,
        does,
        command,
    }
}

const DIGITS: [Key; 9] = [
    Key::Num1,
    Key::Num2,
    Key::Num3,
    Key::Num4,
    Key::Num5,
    Key::Num6,
    Key::Num7,
    Key::Num8,
    Key::Num9,
];

/// The table. Number keys are listed once in the help (as "1-9").
pub const SHORTCUTS: &[Shortcut] = &[
    key(
        Key::Enter,
        "Enter",
        "Confirm the model's verdict",
        Command::Confirm,
    ),
    key(
        Key::O,
        "O",
        "Override: pick the right label and a reason",
        Command::OpenPicker,
    ),
    key(
        Key::U,
        "U",
        "Next part waiting for review (uncertain)",
        Command::NextInQueue,
    ),
    key(
        Key::ArrowLeft,
        "Left",
        "Older part in the history",
        Command::Previous,
    ),
    key(
        Key::ArrowRight,
        "Right",
        "Newer part in the history",
        Command::Next,
    ),
    key(
        Key::Escape,
        "Esc",
        "Back to the live part / close a dialog",
        Command::FollowLive,
    ),
    key(
        Key::Space,
        "Space",
        "Pause or resume the live view",
        Command::TogglePause,
    ),
    key(Key::F11, "F11", "Fullscreen", Command::ToggleFullscreen),
    key(Key::H, "H", "High-contrast theme", Command::ToggleContrast),
    key(Key::F1, "F1", "This help", Command::ToggleHelp),
    key(
        Key::E,
        "E",
        "Engineer sign-in (PIN)",
        Command::EngineerSignIn,
    ),
    key(
        Key::T,
        "T",
        "Decision thresholds (engineer only)",
        Command::Thresholds,
    ),
    key(
        Key::F12,
        "F12",
        "Save a screenshot (store folder, screenshots/)",
        Command::Screenshot,
    ),
    Shortcut {
        key: Key::L,
        modifiers: Modifiers::CTRL,
        keys: "Ctrl+L",
        does: "Sign out",
        command: Command::SignOut,
    },
];

pub const OVERRIDE_HELP: (&str, &str) = ("1-9", "Override to label 1-9 of the label list");

/// Commands typed this frame, in table order. Keys typed into a text field are not commands.
pub fn pressed(ctx: &egui::Context) -> Vec<Command> {
    if ctx.egui_wants_keyboard_input() {
        return Vec::new();
    }
    ctx.input_mut(|input| {
        let mut commands: Vec<Command> = SHORTCUTS
            .iter()
            .filter(|s| input.consume_key(s.modifiers, s.key))
            .map(|s| s.command)
            .collect();
        for (n, digit) in DIGITS.iter().enumerate() {
            if input.consume_key(Modifiers::NONE, *digit) {
                commands.push(Command::OverrideTo(n));
            }
        }
        commands
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice() {
        for (i, a) in SHORTCUTS.iter().enumerate() {
            for b in &SHORTCUTS[i + 1..] {
                assert!(
                    !(a.key == b.key && a.modifiers == b.modifiers),
                    "{} is bound twice",
                    a.keys
                );
            }
            assert!(!DIGITS.contains(&a.key), "{} clashes with 1-9", a.keys);
        }
    }
}
