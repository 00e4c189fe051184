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
    ToggleHeatMap,
    ToggleHelp,
    Screenshot,
    EngineerSignIn,
    Thresholds,
    SwitchModel,
    /// Candidate models from the learning loop, with their comparison (engineer: promote).
    Candidates,
    SignOut,
    /// Larger or smaller text and pictures, remembered for the station; back to the config's.
    ZoomIn,
    ZoomOut,
    ZoomReset,
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

const fn ctrl(key: Key, keys: &'static str, does: &'static str, command: Command) -> Shortcut {
    Shortcut {
        key,
        modifiers: Modifiers::CTRL,
        keys,
        does,
        command,
    }
}

pub const DIGITS: [Key; 9] = [
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
        "Next part waiting for review (uncertain, then the ones that help the next model)",
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
    key(
        Key::V,
        "V",
        "Show or hide the heat map (models that give one)",
        Command::ToggleHeatMap,
    ),
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
        Key::M,
        "M",
        "Switch the model (engineer only)",
        Command::SwitchModel,
    ),
    key(
        Key::P,
        "P",
        "Candidate models: comparison, promote (engineer only)",
        Command::Candidates,
    ),
    key(
        Key::F12,
        "F12",
        "Save a screenshot (store folder, screenshots/)",
        Command::Screenshot,
    ),
    ctrl(Key::L, "Ctrl+L", "Sign out", Command::SignOut),
    ctrl(
        Key::Plus,
        "Ctrl+Plus",
        "Larger (remembered)",
        Command::ZoomIn,
    ),
    ctrl(
        Key::Equals,
        "Ctrl+=",
        "Larger, as Ctrl+Plus",
        Command::ZoomIn,
    ),
    ctrl(
        Key::Minus,
        "Ctrl+Minus",
        "Smaller (remembered)",
        Command::ZoomOut,
    ),
    ctrl(
        Key::Num0,
        "Ctrl+0",
        "Size from the config ([panel] ui_scale)",
        Command::ZoomReset,
    ),
];

pub const OVERRIDE_HELP: (&str, &str) = ("1-9", "Override to label 1-9 of the label list");

/// The next command typed this frame, taken out of the input; the keys after it stay there.
/// One at a time, so "Left, Enter" confirms the older part, never the one that was on
/// screen, and keys typed after O within one frame go to the override dialog it opens.
/// Keys typed into a text field are not commands; a held key repeats only the history
/// steps, never a review.
pub fn next_pressed(ctx: &egui::Context) -> Option<Command> {
    if ctx.egui_wants_keyboard_input() {
        return None;
    }
    ctx.input_mut(|input| {
        while let Some((at, command, repeat)) = first_command(&input.events) {
            input.events.remove(at);
            // The text a key types comes right after its key event: O's "o" is not a reason.
            if matches!(input.events.get(at), Some(egui::Event::Text(_))) {
                input.events.remove(at);
            }
            if !repeat || matches!(command, Command::Previous | Command::Next) {
                return Some(command);
            }
        }
        None
    })
}

/// Where the first key press that is a command sits, the command, and whether it repeats.
fn first_command(events: &[egui::Event]) -> Option<(usize, Command, bool)> {
    events
        .iter()
        .enumerate()
        .find_map(|(at, event)| match event {
            egui::Event::Key {
                key,
                pressed: true,
                repeat,
                modifiers,
                ..
            } => command_for(*key, *modifiers).map(|command| (at, command, *repeat)),
            _ => None,
        })
}

fn command_for(key: Key, modifiers: Modifiers) -> Option<Command> {
    if let Some(shortcut) = SHORTCUTS
        .iter()
        .find(|s| s.key == key && modifiers.matches_logically(s.modifiers))
    {
        return Some(shortcut.command);
    }
    let digit = DIGITS.iter().position(|d| *d == key)?;
    modifiers.is_none().then_some(Command::OverrideTo(digit))
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

    fn key(key: Key, modifiers: Modifiers, repeat: bool) -> egui::Event {
        egui::Event::Key {
            key,
            physical_key: None,
            pressed: true,
            repeat,
            modifiers,
        }
    }

    fn typed(events: Vec<egui::Event>) -> Vec<Command> {
        let ctx = egui::Context::default();
        let mut commands = Vec::new();
        let input = egui::RawInput {
            events,
            ..Default::default()
        };
        let mut output = ctx.run_ui(input, |ui| {
            while let Some(command) = next_pressed(ui.ctx()) {
                commands.push(command);
            }
        });
        output.textures_delta.clear();
        commands
    }

    #[test]
    fn commands_run_in_the_order_they_were_typed() {
        let none = Modifiers::NONE;
        assert_eq!(
            typed(vec![
                key(Key::ArrowLeft, none, false),
                key(Key::Enter, none, false),
                key(Key::Num3, none, false),
                key(Key::L, Modifiers::CTRL, false),
            ]),
            [
                Command::Previous,
                Command::Confirm,
                Command::OverrideTo(2),
                Command::SignOut
            ]
        );
    }

    #[test]
    fn a_held_key_repeats_history_steps_but_never_a_review() {
        let none = Modifiers::NONE;
        assert_eq!(
            typed(vec![
                key(Key::Enter, none, false),
                key(Key::Enter, none, true),
                key(Key::Num2, none, false),
                key(Key::Num2, none, true),
                key(Key::ArrowRight, none, false),
                key(Key::ArrowRight, none, true),
                key(Key::L, none, false),
                key(Key::Num4, Modifiers::CTRL, false),
            ]),
            [
                Command::Confirm,
                Command::OverrideTo(1),
                Command::Next,
                Command::Next
            ]
        );
    }
}
