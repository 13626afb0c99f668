import {eventsShow} from '../../cli/defs/events.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(eventsShow)
